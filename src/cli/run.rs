//! `vmbench run SCENARIO`

use crate::plan::Overrides;
use crate::rundir::Sample;
use crate::runner::{self, InputError, Observer, RunHandle, RunOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Write the run into this directory (default: results/<scenario>-<UTC time>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measured repetitions per target, instead of the scenario's.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,
    /// Warmup repetitions per target, instead of the scenario's.
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Run only this target (repeatable).
    #[arg(long = "only", value_name = "TARGET")]
    pub only: Vec<String>,
    /// The seed of the order of targets within each round (default: a fresh
    /// one, recorded in run.json as `order_seed`; pass it to repeat an order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Free text recorded in run.json (a build number, a description).
    #[arg(long)]
    pub label: Option<String>,
    /// Store this run as baseline NAME (results/baselines/NAME).
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare this run with baseline NAME at the end; exit 1 on a regression.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Where runs go when --out is not given.
    #[arg(long, default_value = "results", hide = true)]
    pub results_dir: PathBuf,
}

pub fn exec(args: RunArgs) -> anyhow::Result<i32> {
    let scenario = match crate::scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", crate::redact::text(&e.to_string()));
            return Ok(super::EXIT_INPUT);
        }
    };
    for name in args.save_baseline.iter().chain(&args.baseline) {
        if let Err(e) = crate::compare::baseline::check_name(name) {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    }
    if let Some(name) = &args.baseline {
        if let Err(e) = crate::compare::baseline::resolve(name, &args.results_dir) {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    }
    let after = After {
        save_baseline: args.save_baseline,
        baseline: args.baseline,
        results_dir: args.results_dir.clone(),
    };
    let opts = RunOptions {
        overrides: Overrides {
            repetitions: args.reps,
            warmup: args.warmup,
            only: args.only,
            order_seed: args.seed,
        },
        out: args.out,
        results_root: args.results_dir,
        label: args.label,
    };
    super::runtime()?.block_on(run(scenario, opts, after))
}

/// What to do with a finished run: save it as a baseline, compare it with one.
struct After {
    save_baseline: Option<String>,
    baseline: Option<String>,
    results_dir: PathBuf,
}

async fn run(scenario: crate::scenario::Scenario, opts: RunOptions, after: After) -> anyhow::Result<i32> {
    let run_id = runner::new_run_id();
    let handle = Arc::new(RunHandle::locked(run_id.clone()).unwrap_or_else(|e| {
        eprintln!("warning: no lock for this run ({e:#}); should vmbench be killed, `vmbench clean` removes what it leaves");
        RunHandle::new(run_id)
    }));
    // A run that died without its own cleanup (kill -9) is swept now, before
    // anything of this run starts; a live run's lock is left alone.
    for said in runner::sweep_dead_runs(&runner::lock::default_dir()).await {
        eprintln!("{said}");
    }
    let status = run_locked(scenario, opts, after, &handle).await;
    handle.release();
    status
}

async fn run_locked(scenario: crate::scenario::Scenario, opts: RunOptions, after: After, handle: &Arc<RunHandle>) -> anyhow::Result<i32> {
    let progress = Arc::new(Progress::new());
    let mut task = {
        let (scenario, handle, progress) = (scenario.clone(), handle.clone(), progress.clone());
        tokio::spawn(async move { runner::execute(&scenario, &opts, handle, progress.as_ref()).await })
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let (signal_name, code) = tokio::select! {
        joined = &mut task => {
            progress.bar.finish_and_clear();
            return finish(handle, joined, &after).await;
        }
        _ = sigint.recv() => ("SIGINT", 130),
        _ = sigterm.recv() => ("SIGTERM", 143),
    };
    // Dropping the run task kills its QEMU children; containers and the
    // run record are swept here.
    task.abort();
    let _ = task.await;
    progress.bar.finish_and_clear();
    let note = format!("interrupted by {signal_name}");
    swept(handle, &note).await;
    eprintln!("{note}; finished samples are kept");
    if let Some(dir) = handle.dir.lock().expect("run handle lock").clone() {
        eprintln!("run directory: {}", dir.display());
    }
    Ok(code)
}

/// Sweeps after an interruption or a crash of the run task; what finished
/// still gets its reports, marked incomplete.
async fn swept(handle: &RunHandle, note: &str) {
    match runner::sweep(handle, note).await {
        Ok(Some(dir)) => {
            let _ = crate::publish::write_all(&dir, &[], std::path::Path::new("report-templates"));
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: cleaning up after the interruption: {e:#}"),
    }
}

async fn finish(
    handle: &RunHandle,
    joined: Result<anyhow::Result<runner::RunOutcome>, tokio::task::JoinError>,
    after: &After,
) -> anyhow::Result<i32> {
    match joined {
        Ok(Ok(outcome)) => {
            let summary = crate::report::table::summary(&outcome.record, &outcome.samples);
            print!("{summary}");
            match crate::publish::write_all(&outcome.dir, &[], std::path::Path::new("report-templates")) {
                Ok(files) => println!("\nrun directory: {} ({})", outcome.dir.display(), files.join(", ")),
                Err(e) => {
                    println!("\nrun directory: {}", outcome.dir.display());
                    eprintln!("warning: writing the reports: {e:#}");
                }
            }
            super::step_summary(&format!(
                "### vmbench run `{}`\n\n```\n{summary}```\n",
                outcome.record.scenario.name
            ));
            let mut status = if outcome.record.failed_samples > 0 {
                super::EXIT_FAILED_SAMPLES
            } else {
                0
            };
            if let Some(name) = &after.save_baseline {
                let saved = crate::compare::baseline::save(&outcome.dir, name, &after.results_dir)?;
                println!("saved as baseline `{name}`: {}", saved.display());
            }
            if let Some(name) = &after.baseline {
                println!();
                status = status.max(super::compare::against_baseline(&outcome.dir, name, &after.results_dir)?);
            }
            Ok(status)
        }
        Ok(Err(e)) if e.downcast_ref::<InputError>().is_some() => {
            // A preflight error may quote an engine address: a CI log is a result too.
            eprintln!("error: {}", crate::redact::text(&format!("{e:#}")));
            Ok(super::EXIT_INPUT)
        }
        Ok(Err(e)) => {
            swept(handle, &format!("failed: {e:#}")).await;
            Err(e)
        }
        Err(join_error) => {
            let note = if join_error.is_panic() {
                "vmbench panicked"
            } else {
                "the run task was cancelled"
            };
            swept(handle, note).await;
            anyhow::bail!("{note}; containers of the run were removed and finished samples kept")
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal); failed
/// trials are printed as they happen either way.
struct Progress {
    bar: ProgressBar,
    /// Whether stderr is a terminal that shows the bar.
    interactive: bool,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::hidden();
        bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} (eta {eta}) {msg}").expect("static template"));
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress { bar, interactive }
    }
}

impl Progress {
    /// `[12/48] native boot rep 3: ready_ms 0.71` for a log.
    fn done_line(&self, sample: &Sample) -> String {
        let phase = if sample.warmup { "warmup" } else { "rep" };
        let metric = crate::metric::headline(sample.workload);
        let value = sample
            .metrics
            .get(metric)
            .map(|v| format!(": {metric} {}", crate::report::table::number(*v)))
            .unwrap_or_default();
        format!(
            "[{}/{}] {} {} {phase} {}{value}",
            self.bar.position(),
            self.bar.length().unwrap_or(0),
            sample.target,
            sample.workload,
            sample.rep
        )
    }
}

impl Observer for Progress {
    fn prepared(&self, total: usize) {
        self.bar.set_length(total as u64);
        if self.interactive {
            self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn trial_started(&self, target: &str, workload: crate::scenario::WorkloadKind, rep: u32, warmup: bool) {
        let phase = if warmup { "warmup" } else { "rep" };
        self.bar.set_message(format!("{target} {workload} {phase} {rep}"));
    }

    fn trial_skipped(&self) {
        self.bar.inc(1);
    }

    fn trial_finished(&self, sample: &Sample) {
        self.bar.inc(1);
        let line = match (&sample.error, &sample.not_applicable) {
            (Some(error), _) => {
                let first = error.lines().next().unwrap_or_default();
                Some(format!("failed: {} {} rep {}: {first}", sample.target, sample.workload, sample.rep))
            }
            (None, Some(reason)) => Some(format!("not applicable: {} {}: {reason}", sample.target, sample.workload)),
            // A CI log has no progress bar: one line per trial instead of
            // silence for the length of the run.
            (None, None) if !self.interactive => Some(self.done_line(sample)),
            (None, None) => None,
        };
        if let Some(line) = line {
            if self.interactive {
                self.bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    }
}
