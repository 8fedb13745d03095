//! Runs a plan: prepares every target (preflight), then executes the trials
//! in order, appending each sample to disk the moment it exists.

pub mod sink;

use crate::backend::{self, Backend, RunContext, TrialRequest, TrialResult};
use crate::plan::{self, Overrides, Plan};
use crate::record::{AutoOutcome, RunRecord, RunStatus, Sample, ScenarioFacts, SCHEMA_VERSION};
use crate::scenario::{AutoRepetitions, Scenario, TargetSpec};
use anyhow::{Context, Result};
use sink::Sink;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An error in what the user asked for (bad `--only`, an occupied `--out`,
/// a preflight failure): the CLI exits with status 2 and nothing ran.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct InputError(pub anyhow::Error);

/// Hears about progress; the CLI draws a progress bar with it.
pub trait Observer: Send + Sync {
    fn prepared(&self, _total_trials: usize) {}
    fn trial_started(&self, _target: &str, _workload: &str, _rep: u32, _warmup: bool) {}
    fn trial_finished(&self, _sample: &Sample) {}
    /// A planned trial that will not run: its target × workload is not
    /// applicable, or `repetitions = "auto"` already ended it.
    fn trial_skipped(&self) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Where a run is going; shared with whoever must clean up after it.
#[derive(Debug, Default)]
pub struct RunHandle {
    pub run_id: String,
    /// Set once the run directory exists.
    pub dir: Mutex<Option<PathBuf>>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub overrides: Overrides,
    /// Write the run exactly here.
    pub out: Option<PathBuf>,
    /// Otherwise under here, as `<scenario>-<UTC timestamp>`.
    pub results_root: PathBuf,
    /// Free text recorded in `run.json` (`--label`).
    pub label: Option<String>,
}

/// What a finished run left.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub record: RunRecord,
    pub samples: Vec<Sample>,
}

/// A fresh run id: UTC timestamp plus a random suffix.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .expect("static format");
    format!("{stamp}-{:04x}", rand::random::<u16>())
}

/// A per-launch nonce: 16 hex digits.
pub fn new_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The run directory for `opts`, refusing one that already holds files.
pub fn run_dir(scenario: &Scenario, opts: &RunOptions, run_id: &str) -> Result<PathBuf, InputError> {
    let occupied = |dir: &Path| std::fs::read_dir(dir).map(|mut e| e.next().is_some()).unwrap_or(false);
    let dir = match &opts.out {
        Some(out) => out.clone(),
        None => {
            // `<scenario>-<UTC time>`; two runs started in the same second get
            // the run id's random suffix as well.
            let stamp = run_id.split('-').next().unwrap_or(run_id);
            let plain = opts.results_root.join(format!("{}-{stamp}", scenario.name));
            if occupied(&plain) {
                opts.results_root.join(format!("{}-{run_id}", scenario.name))
            } else {
                plain
            }
        }
    };
    if occupied(&dir) {
        return Err(InputError(anyhow::anyhow!(
            "{} already exists and is not empty; choose another --out",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Runs `scenario`: preflight, then every trial. Input and preflight
/// problems come back as [`InputError`] before any directory is created.
pub async fn execute(scenario: &Scenario, opts: &RunOptions, handle: Arc<RunHandle>, observer: &dyn Observer) -> Result<RunOutcome> {
    let plan = plan::build(scenario, &opts.overrides).map_err(|e| InputError(anyhow::anyhow!(e)))?;
    let dir = run_dir(scenario, opts, &handle.run_id)?;
    let ctx = RunContext::new(&handle.run_id);
    let mut backends = Vec::new();
    let mut facts = Vec::new();
    for &i in &plan.targets {
        let target = &scenario.targets[i];
        let mut backend = backend::for_target(target, ctx.clone());
        let prepared = backend
            .prepare()
            .await
            .with_context(|| format!("preflight of target `{}`", target.name));
        match prepared {
            Ok(f) => facts.push(f),
            Err(e) if target.optional => {
                // The run goes on; every workload of this target is then
                // reported as not applicable, with this reason.
                let reason = format!("{:#}", e.root_cause());
                facts.push(unavailable_facts(target, &reason));
                backends.push(Box::new(backend::Unavailable(reason)) as Box<dyn Backend>);
                continue;
            }
            Err(e) => {
                cleanup_all(&mut backends).await;
                remove_scratch(&handle.run_id);
                return Err(InputError(e).into());
            }
        }
        backends.push(backend);
    }
    let record = new_record(scenario, &plan, opts, &handle.run_id, facts);
    let mut sink = Sink::create(&dir, record)?;
    *handle.dir.lock().expect("run handle lock") = Some(dir.clone());
    observer.prepared(plan.trials.len());
    let mut samples = Vec::with_capacity(plan.trials.len());
    let result = run_trials(scenario, &plan, &mut backends, &mut sink, observer, &mut samples).await;
    cleanup_all(&mut backends).await;
    remove_scratch(&handle.run_id);
    match &result {
        Ok(()) => sink.finish(RunStatus::Complete, None)?,
        Err(e) => sink.finish(RunStatus::Failed, Some(format!("{e:#}")))?,
    }
    result?;
    Ok(RunOutcome {
        dir,
        record: sink.record.clone(),
        samples,
    })
}

async fn run_trials(
    scenario: &Scenario,
    plan: &Plan,
    backends: &mut [Box<dyn Backend>],
    sink: &mut Sink,
    observer: &dyn Observer,
    samples: &mut Vec<Sample>,
) -> Result<()> {
    // Target × workload pairs whose remaining trials are skipped: not
    // applicable (one sample says so), or ended by `repetitions = "auto"`.
    let mut settled: HashSet<(usize, usize)> = HashSet::new();
    for trial in &plan.trials {
        let pair = (trial.target, trial.workload);
        if settled.contains(&pair) {
            observer.trial_skipped();
            continue;
        }
        let target = &scenario.targets[trial.target];
        let workload = &scenario.workloads[trial.workload];
        let slot = plan.targets.iter().position(|&t| t == trial.target).expect("planned target");
        let known = backends[slot].not_applicable(workload);
        let started_at = now_rfc3339();
        let result = match known {
            Some(reason) => TrialResult {
                not_applicable: Some(reason),
                ..Default::default()
            },
            None => {
                observer.trial_started(&target.name, workload.kind.as_str(), trial.rep, trial.warmup);
                let request = TrialRequest {
                    nonce: new_nonce(),
                    workload: workload.clone(),
                    timeout: scenario.timeout,
                    scratch: None,
                };
                backends[slot].run_trial(&request).await
            }
        };
        let facts = &sink.record.targets[slot];
        let sample = Sample {
            target: target.name.clone(),
            workload: workload.kind.as_str().to_string(),
            rep: trial.rep,
            warmup: trial.warmup,
            seq: trial.seq,
            ok: result.error.is_none() && result.not_applicable.is_none(),
            error: result.error,
            metrics: result.metrics,
            accel: facts.accel.clone(),
            runtime: match &target.spec {
                TargetSpec::Container(c) => Some(c.runtime.clone()),
                _ => None,
            },
            agent_kernel: result.agent_kernel,
            started_at,
            not_applicable: result.not_applicable,
        };
        sink.append(&sample)?;
        observer.trial_finished(&sample);
        if sample.not_applicable.is_some() {
            settled.insert(pair);
        }
        samples.push(sample);
        if let (Some(auto), false, false) = (plan.auto, trial.warmup, settled.contains(&pair)) {
            if let Some(outcome) = auto_outcome(&auto, plan.repetitions, &target.name, workload.kind.as_str(), samples) {
                settled.insert(pair);
                sink.record_auto(auto, outcome)?;
            }
        }
    }
    Ok(())
}

/// Whether `repetitions = "auto"` ends this target × workload now: the
/// coefficient of variation of its headline metric over the good measured
/// samples so far is under the target (after at least `min` of them), or
/// every planned repetition has run.
fn auto_outcome(auto: &AutoRepetitions, max: u32, target: &str, workload: &str, samples: &[Sample]) -> Option<AutoOutcome> {
    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| !s.warmup && s.target == target && s.workload == workload)
        .collect();
    let metric = crate::metric::headline(workload);
    let values: Vec<f64> = mine
        .iter()
        .filter(|s| s.ok)
        .filter_map(|s| s.metrics.get(metric).copied())
        .collect();
    let cov = crate::stats::Summary::of(&values).map(|s| s.cov());
    let converged = values.len() as u32 >= auto.min && cov.is_some_and(|c| c <= auto.target_cov);
    (converged || mine.len() as u32 >= max).then(|| AutoOutcome {
        target: target.to_string(),
        workload: workload.to_string(),
        metric: metric.to_string(),
        repetitions: mine.len() as u32,
        cov,
        converged,
    })
}

/// What `run.json` says about an optional target that could not run here.
fn unavailable_facts(target: &crate::scenario::Target, reason: &str) -> crate::record::TargetFacts {
    let (kind, backend, runtime) = match &target.spec {
        TargetSpec::Vm(vm) => ("vm", format!("{:?}", vm.backend).to_lowercase(), None),
        TargetSpec::Container(c) => ("container", c.engine.as_str().to_string(), Some(c.runtime.clone())),
        TargetSpec::Native => ("native", "native".to_string(), None),
    };
    crate::record::TargetFacts {
        name: target.name.clone(),
        kind: kind.into(),
        backend,
        runtime,
        settings: [("unavailable".to_string(), reason.to_string())].into_iter().collect(),
        ..Default::default()
    }
}

async fn cleanup_all(backends: &mut [Box<dyn Backend>]) {
    for backend in backends.iter_mut() {
        // Cleanup is best effort here; the CLI's sweep runs afterwards too.
        let _ = backend.cleanup().await;
    }
}

fn new_record(scenario: &Scenario, plan: &Plan, opts: &RunOptions, run_id: &str, targets: Vec<crate::record::TargetFacts>) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        vmbench_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        status: RunStatus::Running,
        started_at: now_rfc3339(),
        finished_at: None,
        scenario: ScenarioFacts {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            path: scenario.path.display().to_string(),
            text: scenario.text.clone(),
            sha256: crate::guest::sha256_hex(scenario.text.as_bytes()),
            repetitions: plan.repetitions,
            warmup: plan.warmup,
            timeout_s: scenario.timeout.as_secs_f64(),
            workloads: scenario.workloads.iter().map(|w| w.kind.as_str().to_string()).collect(),
            only: opts.overrides.only.clone(),
            auto: None,
        },
        host: crate::host::facts(),
        targets,
        samples: 0,
        failed_samples: 0,
        note: None,
        git: std::env::current_dir().ok().and_then(|d| crate::host::git(&d)),
        label: opts.label.clone(),
    }
}

/// After an interruption or a crash of the run task: removes every container
/// of the run and marks `run.json` as interrupted. Idempotent.
pub async fn sweep(scenario: &Scenario, handle: &RunHandle, note: &str) -> Result<()> {
    let mut hosts: Vec<(crate::scenario::Engine, String)> = scenario
        .targets
        .iter()
        .filter_map(|t| match &t.spec {
            TargetSpec::Container(c) => Some((c.engine, backend::docker::engine_address(c.engine, c.host.as_deref()))),
            _ => None,
        })
        .collect();
    hosts.sort_by(|a, b| a.1.cmp(&b.1));
    hosts.dedup();
    for (engine, host) in hosts {
        if let Ok(docker) = backend::docker::connect(engine, &host).await {
            // A create call cut off mid-flight may still land: sweep twice.
            let _ = backend::docker::remove_run_containers(&docker, &handle.run_id).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            backend::docker::remove_run_containers(&docker, &handle.run_id).await?;
        }
    }
    #[cfg(feature = "libvirt")]
    for uri in libvirt_uris(scenario) {
        let run_id = handle.run_id.clone();
        // Likewise, a create call in flight may still start its domain.
        for _ in 0..2 {
            let (uri, run_id) = (uri.clone(), run_id.clone());
            let _ = tokio::task::spawn_blocking(move || backend::libvirt::destroy_run_domains(&uri, &run_id)).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
    remove_scratch(&handle.run_id);
    let dir = handle.dir.lock().expect("run handle lock").clone();
    if let Some(dir) = dir {
        mark_interrupted(&dir, note)?;
        // What finished still gets its reports, marked incomplete.
        let _ = crate::report::formats::write(&dir, &[], Path::new("report-templates"));
    }
    Ok(())
}

/// Removes the run's scratch directory (disk images, volume files).
pub fn remove_scratch(run_id: &str) {
    let dirs = [
        Some(backend::scratch_root(run_id)),
        #[cfg(feature = "libvirt")]
        Some(backend::libvirt::images_dir(run_id)),
    ];
    for dir in dirs.into_iter().flatten().filter(|d| d.exists()) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("warning: could not remove scratch directory {}: {e}", dir.display());
        }
    }
}

/// The libvirt URIs a scenario's targets use, each once.
#[cfg(feature = "libvirt")]
fn libvirt_uris(scenario: &Scenario) -> Vec<String> {
    let mut uris: Vec<String> = scenario
        .targets
        .iter()
        .filter_map(|t| match &t.spec {
            TargetSpec::Vm(vm) if vm.backend == crate::scenario::VmBackend::Libvirt => Some(vm.uri.clone()),
            _ => None,
        })
        .collect();
    uris.sort();
    uris.dedup();
    uris
}

fn mark_interrupted(dir: &Path, note: &str) -> Result<()> {
    let mut record = sink::read_run_record(dir)?;
    let samples = sink::read_samples(dir).unwrap_or_default();
    record.samples = samples.len();
    record.failed_samples = samples.iter().filter(|s| s.failed()).count();
    record.status = RunStatus::Interrupted;
    record.note = Some(note.to_string());
    record.finished_at = Some(now_rfc3339());
    sink::write_run_record(dir, &record)
}
