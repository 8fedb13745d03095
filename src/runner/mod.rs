//! Runs a plan: prepares every target (preflight), then executes the trials
//! in order, appending each sample to disk the moment it exists.

pub mod apps;
pub mod driver;
pub mod lock;
pub mod network;

use crate::backend::{self, Backend, RunContext, Sweeper};
use crate::plan::{self, Overrides, Plan};
use crate::rundir::Sink;
use crate::rundir::{AutoOutcome, RunRecord, RunStatus, Sample, ScenarioFacts, TargetFacts, SCHEMA_VERSION};
use crate::scenario::{AutoRepetitions, CpuSet, Scenario, Target, TargetSpec, WorkloadKind};
use anyhow::Result;
use driver::TrialResult;
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
    fn trial_started(&self, _target: &str, _workload: WorkloadKind, _rep: u32, _warmup: bool) {}
    fn trial_finished(&self, _sample: &Sample) {}
    /// A planned trial that will not run: its target × workload is not
    /// applicable, or `repetitions = "auto"` already ended it.
    fn trial_skipped(&self) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Where a run is going; shared with whoever must clean up after it.
#[derive(Default)]
pub struct RunHandle {
    pub run_id: String,
    /// Set once the run directory exists.
    pub dir: Mutex<Option<PathBuf>>,
    /// What the run's backends may leave behind, registered before they
    /// create anything.
    sweepers: Mutex<Vec<Arc<dyn Sweeper>>>,
    /// Held while the run lives, so that a later vmbench can sweep it should
    /// it die without cleaning up (see [`lock`]).
    lock: Option<lock::RunLock>,
}

impl RunHandle {
    /// A run without a lock (the runner's own tests).
    pub fn new(run_id: String) -> Self {
        RunHandle {
            run_id,
            ..Default::default()
        }
    }

    /// A run holding its lock in vmbench's cache; release it with
    /// [`RunHandle::release`] once the run has swept what it made.
    pub fn locked(run_id: String) -> Result<Self> {
        let lock = lock::RunLock::acquire(&lock::default_dir(), &run_id)?;
        Ok(RunHandle {
            run_id,
            lock: Some(lock),
            ..Default::default()
        })
    }

    fn register(&self, sweeper: Arc<dyn Sweeper>) {
        if let (Some(lock), Some(leftovers)) = (&self.lock, sweeper.leftovers()) {
            if let Err(e) = lock.add(leftovers) {
                eprintln!("warning: recording what run {} may leave behind: {e:#}", self.run_id);
            }
        }
        self.sweepers.lock().expect("run handle lock").push(sweeper);
    }

    fn set_dir(&self, dir: &Path) {
        if let Some(lock) = &self.lock {
            if let Err(e) = lock.set_dir(dir) {
                eprintln!("warning: recording run {}'s directory in its lock: {e:#}", self.run_id);
            }
        }
        *self.dir.lock().expect("run handle lock") = Some(dir.to_path_buf());
    }

    /// The run has swept what it made (at its end, or after an
    /// interruption): nobody needs to sweep it again.
    pub fn release(&self) {
        if let Some(lock) = &self.lock {
            lock.release();
        }
    }
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

/// A target ready to run: the scenario's target, its backend and what
/// preflight recorded about it.
pub struct PreparedTarget {
    pub target: Target,
    pub backend: Box<dyn Backend>,
    pub facts: TargetFacts,
}

/// Runs `scenario`: preflight, then every trial. Input and preflight
/// problems come back as [`InputError`] before any directory is created.
pub async fn execute(scenario: &Scenario, opts: &RunOptions, handle: Arc<RunHandle>, observer: &dyn Observer) -> Result<RunOutcome> {
    let ctx = RunContext::new(&handle.run_id, scenario.cpuset.clone(), scenario.accounting);
    execute_with(scenario, opts, handle, observer, |target| backend::for_target(target, ctx.clone())).await
}

/// [`execute`] with the backends `make` gives for each target (a fake one
/// in the runner's own tests).
pub async fn execute_with(
    scenario: &Scenario,
    opts: &RunOptions,
    handle: Arc<RunHandle>,
    observer: &dyn Observer,
    make: impl Fn(&Target) -> Box<dyn Backend>,
) -> Result<RunOutcome> {
    let plan = plan::build(scenario, &opts.overrides).map_err(|e| InputError(anyhow::anyhow!(e)))?;
    let dir = run_dir(scenario, opts, &handle.run_id)?;
    let harness = pin_harness(scenario.cpuset.as_ref())?;
    let backends = plan
        .targets
        .iter()
        .map(|&i| (scenario.targets[i].clone(), make(&scenario.targets[i])))
        .collect();
    let targets = match prepare_all(backends, &handle).await {
        Ok(targets) => targets,
        Err(e) => {
            end_of_run(&handle, false).await;
            return Err(InputError(e).into());
        }
    };
    let facts = targets.iter().map(|t| t.facts.clone()).collect();
    let mut record = new_record(scenario, &plan, opts, &handle.run_id, facts);
    record.scenario.cpuset = scenario.cpuset.as_ref().map(ToString::to_string);
    record.scenario.harness_cpuset = harness.map(|h| h.to_string());
    let mut sink = Sink::create(&dir, record)?;
    handle.set_dir(&dir);
    observer.prepared(plan.trials.len());
    let mut samples = Vec::with_capacity(plan.trials.len());
    let result = run_trials(scenario, &plan, &targets, &mut sink, observer, &mut samples).await;
    end_of_run(&handle, false).await;
    match &result {
        Ok(()) => sink.finish(RunStatus::Complete, None)?,
        Err(e) => sink.finish(RunStatus::Failed, Some(format!("{e:#}")))?,
    }
    result?;
    drop(samples);
    // Read back from the file rather than kept through the run, so a long
    // run's memory does not grow with every sample.
    let samples = crate::rundir::read_samples(&dir)?;
    Ok(RunOutcome {
        dir,
        record: sink.record.clone(),
        samples,
    })
}

/// Keeps vmbench's own thread (and what it starts later: the blocking pool,
/// the sampler and network threads) off the targets' CPUs. Returns where
/// vmbench runs, `None` when nothing is pinned.
fn pin_harness(targets: Option<&CpuSet>) -> Result<Option<CpuSet>> {
    let Some(targets) = targets else { return Ok(None) };
    let harness = targets.complement_in(&CpuSet::allowed());
    if harness.is_empty() {
        return Ok(None);
    }
    harness
        .apply_to_current_thread()
        .map_err(|e| InputError(anyhow::anyhow!("pinning vmbench to CPU {harness}: {e}")))?;
    Ok(Some(harness))
}

/// Preflight of every target, in order. Each backend's sweeper is
/// registered before its preparation can create anything.
async fn prepare_all(backends: Vec<(Target, Box<dyn Backend>)>, handle: &RunHandle) -> anyhow::Result<Vec<PreparedTarget>> {
    let mut prepared = Vec::with_capacity(backends.len());
    for (target, mut backend) in backends {
        if let Some(sweeper) = backend.sweeper() {
            handle.register(sweeper);
        }
        let preparing = std::time::Instant::now();
        let facts = match backend.prepare().await {
            Ok(mut facts) => {
                facts.prepare_ms = Some(preparing.elapsed().as_secs_f64() * 1e3);
                if let Some(probe) = backend.ready_probe() {
                    facts
                        .settings
                        .insert("ready_probe_resolution".into(), driver::probe_resolution(&probe));
                }
                facts
            }
            // The run goes on; every workload of this target is then
            // reported as not applicable, with this reason.
            Err(e) if target.optional => {
                let reason = format!("{:#}", e.root_cause());
                let facts = unavailable_facts(&target, &reason);
                prepared.push(PreparedTarget {
                    target,
                    backend: Box::new(backend::Unavailable(reason)),
                    facts,
                });
                continue;
            }
            Err(e) => return Err(e.context(format!("preflight of target `{}`", target.name))),
        };
        prepared.push(PreparedTarget { target, backend, facts });
    }
    Ok(prepared)
}

async fn run_trials(
    scenario: &Scenario,
    plan: &Plan,
    targets: &[PreparedTarget],
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
        let slot = plan.targets.iter().position(|&t| t == trial.target).expect("planned target");
        let target = &targets[slot];
        let workload = &scenario.workloads[trial.workload];
        let started_at = crate::rundir::now_rfc3339();
        let result = match target.backend.not_applicable(workload) {
            Some(reason) => TrialResult {
                not_applicable: Some(reason),
                ..Default::default()
            },
            None => {
                observer.trial_started(&target.target.name, workload.kind, trial.rep, trial.warmup);
                driver::run_trial(target.backend.as_ref(), workload, scenario.timeout).await
            }
        };
        let sample = sink.append(&sample_of(target, workload.kind, trial, started_at, result))?;
        observer.trial_finished(&sample);
        if sample.not_applicable.is_some() {
            settled.insert(pair);
        }
        if plan.auto.is_some() {
            // `repetitions = "auto"` decides on each pair's headline values;
            // nothing else of a sample is kept in memory.
            samples.push(headline_only(sample, workload.kind));
        }
        if let (Some(auto), false) = (plan.auto, trial.warmup) {
            settle_auto(&auto, plan, targets, trial.workload, workload.kind, &mut settled, samples, sink)?;
        }
    }
    Ok(())
}

/// `repetitions = "auto"` ends a workload's rounds only once every target
/// still running it may stop: a target that is steady early keeps running
/// beside the others, so every round stays complete (paired across targets)
/// and none is measured over a shorter stretch of the host's drift.
#[allow(clippy::too_many_arguments)]
fn settle_auto(
    auto: &AutoRepetitions,
    plan: &Plan,
    targets: &[PreparedTarget],
    workload: usize,
    kind: WorkloadKind,
    settled: &mut HashSet<(usize, usize)>,
    samples: &[Sample],
    sink: &mut Sink,
) -> Result<()> {
    let open: Vec<(usize, &PreparedTarget)> = plan
        .targets
        .iter()
        .zip(targets)
        .filter(|(t, _)| !settled.contains(&(**t, workload)))
        .map(|(t, p)| (*t, p))
        .collect();
    let measured = |name: &str| {
        samples
            .iter()
            .filter(|s| !s.warmup && s.target == name && s.workload == kind)
            .count()
    };
    let counts: HashSet<usize> = open.iter().map(|(_, p)| measured(&p.target.name)).collect();
    if counts.len() > 1 {
        // The round is not over: decide only between rounds.
        return Ok(());
    }
    let outcomes: Option<Vec<AutoOutcome>> = open
        .iter()
        .map(|(_, p)| auto_outcome(auto, plan.repetitions, &p.target.name, kind, samples))
        .collect();
    for ((t, _), outcome) in open.iter().zip(outcomes.unwrap_or_default()) {
        settled.insert((*t, workload));
        sink.record_auto(*auto, outcome)?;
    }
    Ok(())
}

/// What the stopping rule of `repetitions = "auto"` reads of a sample.
fn headline_only(mut sample: Sample, workload: WorkloadKind) -> Sample {
    let metric = crate::metric::headline(workload);
    sample.metrics.retain(|name, _| name == metric);
    sample.error = None;
    sample
}

/// The line of `samples.jsonl` for one trial.
fn sample_of(target: &PreparedTarget, workload: WorkloadKind, trial: &plan::Trial, started_at: String, result: TrialResult) -> Sample {
    Sample {
        target: target.target.name.clone(),
        workload,
        rep: trial.rep,
        warmup: trial.warmup,
        seq: trial.seq,
        ok: result.error.is_none() && result.not_applicable.is_none(),
        error: result.error,
        metrics: result.metrics,
        accel: target.facts.accel.clone(),
        runtime: target.facts.runtime.clone(),
        agent_kernel: result.agent_kernel,
        clocksource: result.clocksource,
        agent_facts: result.agent_facts,
        server: result.server,
        started_at,
        not_applicable: result.not_applicable,
    }
}

/// Whether `repetitions = "auto"` ends this target × workload now: the
/// exact 95% interval of the median of its headline metric (good measured
/// samples, in run order) is at most 2 × `target_cov` of the median wide,
/// i.e. the median is known to ±`target_cov`, both with every sample so far
/// and without the latest one; or every planned repetition has run. Never
/// before `min` good samples. Each of the two sizes must have a real 95%
/// interval (n ≥ 6), so the earliest stop is at 7. Why not the CoV: stopping
/// at its first dip under a target picks the luckiest moment and leaves the
/// reported intervals too narrow; a width asked of the interval itself, twice
/// in a row, cannot be met by one lucky value.
fn auto_outcome(auto: &AutoRepetitions, max: u32, target: &str, workload: WorkloadKind, samples: &[Sample]) -> Option<AutoOutcome> {
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
    let confidence = crate::stats::CONFIDENCE;
    // (high − low) / |median| of the exact interval, and whether it reaches 95%.
    let width = |v: &[f64]| {
        let interval = crate::stats::median_interval(v, confidence)?;
        let median = crate::stats::median(v).filter(|m| *m != 0.0)?;
        Some(((interval.high - interval.low) / median.abs(), interval.coverage >= confidence))
    };
    let narrow = |v: &[f64]| width(v).is_some_and(|(w, exact)| exact && w <= 2.0 * auto.target_cov);
    let n = values.len();
    let converged = n as u32 >= auto.min && n >= 2 && narrow(&values) && narrow(&values[..n - 1]);
    (converged || mine.len() as u32 >= max).then(|| AutoOutcome {
        target: target.to_string(),
        workload,
        metric: metric.to_string(),
        repetitions: mine.len() as u32,
        cov: crate::stats::Summary::of(&values).map(|s| s.cov()),
        median_ci_rel_width: width(&values).map(|(w, _)| w),
        converged,
    })
}

/// What `run.json` says about an optional target that could not run here.
fn unavailable_facts(target: &Target, reason: &str) -> TargetFacts {
    let (backend, runtime, engine) = match &target.spec {
        TargetSpec::Vm(vm) => (format!("{:?}", vm.backend).to_lowercase(), None, None),
        TargetSpec::Container(c) => (c.engine.as_str().to_string(), Some(c.runtime.clone()), Some(c.engine)),
        TargetSpec::Native(_) => ("native".to_string(), None, None),
    };
    TargetFacts {
        name: target.name.clone(),
        kind: target.kind(),
        backend,
        runtime,
        engine,
        unavailable: Some(reason.to_string()),
        ..Default::default()
    }
}

fn new_record(scenario: &Scenario, plan: &Plan, opts: &RunOptions, run_id: &str, targets: Vec<TargetFacts>) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        vmbench_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        status: RunStatus::Running,
        started_at: crate::rundir::now_rfc3339(),
        finished_at: None,
        scenario: ScenarioFacts {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            path: scenario.path.display().to_string(),
            // The text as recorded, credentials redacted; its hash too, so
            // that it cannot be used to guess what was redacted.
            text: crate::redact::text(&scenario.text).into_owned(),
            sha256: crate::guest::sha256_hex(crate::redact::text(&scenario.text).as_bytes()),
            repetitions: plan.repetitions,
            warmup: plan.warmup,
            timeout_s: scenario.timeout.as_secs_f64(),
            workloads: scenario.workloads.iter().map(|w| w.kind).collect(),
            only: opts.overrides.only.clone(),
            order_seed: Some(plan.order_seed),
            cpuset: None,
            harness_cpuset: None,
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

/// Runs every registered sweeper once (by key), then removes the run's
/// scratch directory.
async fn end_of_run(handle: &RunHandle, interrupted: bool) {
    let sweepers: Vec<Arc<dyn Sweeper>> = handle.sweepers.lock().expect("run handle lock").clone();
    let mut seen = HashSet::new();
    for sweeper in sweepers.iter().filter(|s| seen.insert(s.key())) {
        if let Err(e) = sweeper.sweep(&handle.run_id, interrupted).await {
            let warning = format!("warning: cleaning up {}: {e:#}", sweeper.key());
            eprintln!("{}", crate::redact::text(&warning));
        }
    }
    let dir = backend::scratch_root(&handle.run_id);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("warning: could not remove scratch directory {}: {e}", dir.display());
        }
    }
}

/// After an interruption or a crash of the run task: removes everything of
/// the run its backends registered and marks `run.json` as interrupted.
/// Idempotent. Returns the run directory, if it was created.
pub async fn sweep(handle: &RunHandle, note: &str) -> Result<Option<PathBuf>> {
    end_of_run(handle, true).await;
    let dir = handle.dir.lock().expect("run handle lock").clone();
    if let Some(dir) = &dir {
        mark_interrupted(dir, note)?;
    }
    Ok(dir)
}

/// Sweeps every run whose vmbench died holding its lock in `lock_dir` (none
/// of the live ones): what its sweepers remove, its scratch files, and marks
/// its `run.json` interrupted if it still says running. One line per run.
pub async fn sweep_dead_runs(lock_dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    for dead in lock::dead_runs(lock_dir) {
        let info = dead.info.clone();
        let handle = RunHandle::new(info.run_id.clone());
        let mut problems = Vec::new();
        for leftovers in &info.leftovers {
            match backend::sweeper_for(leftovers) {
                Ok(sweeper) => handle.register(sweeper),
                Err(e) => problems.push(e),
            }
        }
        let swept: Vec<String> = handle.sweepers.lock().expect("run handle lock").iter().map(|s| s.key()).collect();
        end_of_run(&handle, true).await;
        let mut line = format!(
            "run {} (vmbench pid {}, started {}) died without cleaning up; swept {}scratch files",
            info.run_id,
            info.pid,
            if info.started_at.is_empty() { "?" } else { &info.started_at },
            swept.iter().map(|k| format!("{k}, ")).collect::<String>()
        );
        if let Some(dir) = &info.dir {
            let note = format!(
                "vmbench (pid {}) died without cleaning up (killed?); its leftovers were swept by a later vmbench at {}",
                info.pid,
                crate::rundir::now_rfc3339()
            );
            match crate::rundir::read_run_record(dir) {
                Ok(record) if record.status == RunStatus::Running => match mark_interrupted(dir, &note) {
                    Ok(()) => line.push_str(&format!("; marked {} interrupted", dir.join(crate::rundir::RUN_FILE).display())),
                    Err(e) => problems.push(format!("marking {}: {e:#}", dir.display())),
                },
                Ok(_) => {}
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        for problem in problems {
            line.push_str(&format!("; could not: {problem}"));
        }
        said.push(crate::redact::text(&line).into_owned());
        dead.forget();
    }
    said
}

fn mark_interrupted(dir: &Path, note: &str) -> Result<()> {
    let mut record = crate::rundir::read_run_record(dir)?;
    let samples = crate::rundir::read_samples(dir).unwrap_or_default();
    record.samples = samples.len();
    record.failed_samples = samples.iter().filter(|s| s.failed()).count();
    record.status = RunStatus::Interrupted;
    record.note = Some(note.to_string());
    record.finished_at = Some(crate::rundir::now_rfc3339());
    crate::rundir::write_run_record(dir, &record)
}

#[cfg(test)]
mod tests;
